#!/usr/bin/env bash
# Moves the checkpoints a device run does not use out of the working tree (the tree and the
# carried payload must fit in 64 MiB; scripts/gpu/README.md), or puts them back (--restore).
set -euo pipefail
cd "$(dirname "$0")/../.."
PARK=.gpu/parked
KEEP=${KEEP:-"second_synth-kitti_cpu second_synth-kitti_cpu_spss50_fg-margin second_synth-kitti_cpu_ada3d centerpoint_synth-kitti_cpu"}
mkdir -p "$PARK"
if [ "${1:-}" = "--restore" ]; then
  for f in "$PARK"/*.pth; do [ -e "$f" ] && mv "$f" checkpoints/; done
  git status --short checkpoints
  exit 0
fi
for f in checkpoints/*.pth; do
  name=$(basename "$f" .pth)
  case " $KEEP " in *" $name "*) ;; *) mv "$f" "$PARK/" ;; esac
done
du -ch $(git ls-files | while read -r f; do [ -e "$f" ] && echo "$f"; done) | tail -n 1
