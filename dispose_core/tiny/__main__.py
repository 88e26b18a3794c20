"""``python -m dispose_core.tiny --out <ComfyUI models folder>``: write all tiny model files."""
from __future__ import annotations

import argparse

from . import write_all, writer_modules


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True, help="a ComfyUI 'models' folder (created if needed)")
    parser.add_argument("--only", nargs="*", choices=writer_modules(), help="write only these groups")
    args = parser.parse_args()
    for path in write_all(args.out, args.only):
        print(path)


if __name__ == "__main__":
    main()
