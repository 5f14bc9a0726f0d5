"""Deployment of a controllable model: the lookup table and the search.

    # measure the lookup table on the config's held-out split
    # (lookup_dataloader); writes it next to the checkpoint by default
    python tools/controllable.py table CONFIG CHECKPOINT [--out PATH]
        [--overwrite]
        [--per-stage --budgets 0.5 0.75 --population 16 --generations 4]

    # the configuration a (budget, preference) request runs
    python tools/controllable.py search CONFIG --table PATH --budget 0.5
        --preference semseg=0.6 depth=0.4 [--size 512 512]

Then evaluate or deploy it with the configs' ``test_cfg``::

    python tools/test.py CONFIG CHECKPOINT --cfg-options \\
        model.test_cfg.lookup_table=PATH model.test_cfg.budget=0.5 \\
        "model.test_cfg.preference={semseg:0.6,depth:0.4}"

``table`` measures every stage-uniform encoder sub-network at every
decoder width (one encoder pass per image and configuration). With
``--per-stage`` an evolutionary search over per-stage encoder choices
adds, per budget, the best encoder it finds for the uniform preference
(fitness measured on the same held-out images), so the run-time search
(instant, over the table's encoders) can pick per-stage configurations
too. The table is JSON; reading it runs no code.
"""
import argparse
import json
import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

from mmengine.config import DictAction  # noqa: E402

from mmadamtl.apis import build_table, heldout_batches, init_model  # noqa
from mmadamtl.models.utils.controllable_search import \
    LookupTable  # noqa: E402
from mmadamtl.utils.cli import stdout_to_stderr  # noqa: E402
from mmadamtl.utils.safe_io import check_output  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    sub = parser.add_subparsers(dest='command', required=True)
    t = sub.add_parser('table', help='measure the lookup table')
    t.add_argument('config')
    t.add_argument('checkpoint')
    t.add_argument('--out', help='default: lookup_table.json next to the '
                   'checkpoint')
    t.add_argument('--overwrite', action='store_true',
                   help='replace an existing table')
    t.add_argument('--per-stage', action='store_true')
    t.add_argument('--budgets', type=float, nargs='+', default=[0.5, 0.75])
    t.add_argument('--population', type=int, default=16)
    t.add_argument('--generations', type=int, default=4)
    s = sub.add_parser('search', help='configuration of a request')
    s.add_argument('config')
    s.add_argument('--table', required=True)
    s.add_argument('--budget', type=float)
    s.add_argument('--preference', nargs='+', action=DictAction,
                   help='task=weight ...')
    s.add_argument('--size', type=int, nargs=2, help='input H W; default '
                   'the table\'s')
    for p in (t, s):
        p.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    with stdout_to_stderr():
        result = work(args)
    print(json.dumps(result, indent=1))
    return result


def work(args) -> dict:
    if args.command == 'table':
        out = args.out or osp.join(osp.dirname(args.checkpoint),
                                   'lookup_table.json')
        inputs = [args.config, args.checkpoint]
        check_output(out, inputs, args.overwrite, 'lookup table')
        model = init_model(args.config, args.checkpoint,
                           cfg_options=args.cfg_options)
        dataset, batches = heldout_batches(model)
        table = build_table(model, dataset, batches, args.per_stage,
                            args.budgets, args.population, args.generations)
        table.source['checkpoint'] = args.checkpoint
        table.save(out, inputs=inputs, overwrite=args.overwrite)
        result = dict(table=out, encoders=len(table.encoders),
                      widths=table.widths, reference=table.reference)
    else:
        model = init_model(args.config, cfg_options=args.cfg_options)
        table = LookupTable.load(args.table)
        model.set_lookup_table(table)
        size = args.size or table.img_size
        pref = {k: float(v) for k, v in (args.preference or {}).items()}
        found = model.search(size, args.budget, pref or None)
        result = dict(encoder=[list(s) for s in found.encoder],
                      decoders=found.decoders, score=found.score,
                      gflops=found.flops / 1e9,
                      budget_gflops=found.budget_flops / 1e9)
    return result


if __name__ == '__main__':
    main()
