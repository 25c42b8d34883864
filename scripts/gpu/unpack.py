"""Unpack the GPU payload (a tar.xz made by scripts/gpu/prepare.sh) with the standard library
only: the device machine has Python but no package index, and perhaps no xz binary.

Usage: python3 scripts/gpu/unpack.py .gpu/site.tar.xz /tmp/site
"""
import sys
import tarfile
import time


def main():
    if len(sys.argv) != 3:
        sys.exit('usage: unpack.py PAYLOAD.tar.xz TARGET_DIR')
    src, dst = sys.argv[1:]
    t0 = time.perf_counter()
    try:
        with tarfile.open(src, 'r:xz') as tar:
            tar.extractall(dst, filter='tar')
    except (OSError, tarfile.TarError) as e:
        sys.exit(f'unpack.py: {src}: {e}')
    print(f'unpacked {src} into {dst} in {time.perf_counter() - t0:.1f} s')


if __name__ == '__main__':
    main()
