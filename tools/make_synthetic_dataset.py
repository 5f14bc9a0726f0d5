"""Generate the embedded synthetic multi-task dataset (PASCAL_MT layout).

    python tools/make_synthetic_dataset.py data/synthetic \
        --num-train 300 --num-val 100 --size 128 --seed 0 [--overwrite]

A non-empty folder is refused unless ``--overwrite`` is given.
"""
import argparse
import time

from mmadamtl.datasets import make_synthetic_dataset
from mmadamtl.utils.cli import non_negative_int, positive_int


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('out_dir', help='root folder of the dataset')
    parser.add_argument('--num-train', type=positive_int, default=300)
    parser.add_argument('--num-val', type=positive_int, default=100)
    parser.add_argument('--size', type=positive_int, default=128,
                        help='side of the square images, in pixels')
    parser.add_argument('--max-objects', type=non_negative_int, default=8)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--overwrite', action='store_true',
                        help='generate into a non-empty folder (replaces '
                        'its split files, meta.json and same-named files)')
    return parser.parse_args()


def main():
    args = parse_args()
    start = time.time()
    meta = make_synthetic_dataset(
        args.out_dir,
        num_train=args.num_train,
        num_val=args.num_val,
        size=args.size,
        max_objects=args.max_objects,
        seed=args.seed,
        progress=True,
        overwrite=args.overwrite)
    counts = list(meta['num_objects'].values())
    print(f'wrote {len(counts)} images ({args.num_train} train, '
          f'{args.num_val} val) of {args.size}x{args.size} to '
          f'{args.out_dir} in {time.time() - start:.1f}s; objects per image '
          f'{min(counts)}..{max(counts)}')


if __name__ == '__main__':
    main()
