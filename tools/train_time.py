"""Median training-iteration time of finished runs, from their logs.

    python tools/train_time.py WORK_DIR [WORK_DIR ...] [--skip 10] [--json]

Reads each run's ``vis_data/scalars.json`` (the IterTimerHook's ``time``,
seconds per iteration, as logged) and prints the median over the logged
iterations after the first ``--skip``. Log every iteration
(``default_hooks.logger.interval=1``) for a fine-grained figure.
"""
import argparse
import json
import statistics

from mmadamtl.utils.timing import iteration_times


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('work_dirs', nargs='+')
    parser.add_argument('--skip', type=int, default=10)
    parser.add_argument('--json', action='store_true')
    args = parser.parse_args(argv)
    result = {}
    for d in args.work_dirs:
        t = iteration_times(d, args.skip)
        result[d] = dict(median_s=statistics.median(t), iterations=len(t))
    if args.json:
        print(json.dumps(result))
    else:
        for d, r in result.items():
            print(f"{d}: {1e3 * r['median_s']:.1f} ms/iteration (median of "
                  f"{r['iterations']} logged)")


if __name__ == '__main__':
    main()
