#!/usr/bin/env bash
# The demo: real sample photos shipped inside scikit-image's wheel, copied into a
# git-ignored folder, indexed, then searched by text, by image, and by both.
# Run it with `make demo` (which puts .venv/bin on PATH).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
photos="$here/photos"
mkdir -p "$photos"
python - "$photos" <<'PY'
import shutil, sys
from pathlib import Path
import skimage
src = Path(skimage.__file__).parent / "data"
names = ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png",
         "motorcycle_right.png", "camera.png", "clock_motion.png", "horse.png", "coins.png",
         "hubble_deep_field.jpg", "retina.jpg", "brick.png", "grass.png", "moon.png", "page.png"]
for name in names:
    if (src / name).exists():
        shutil.copy2(src / name, Path(sys.argv[1]) / name)
print(f"copied {len(list(Path(sys.argv[1]).glob('*.*')))} sample photos into {sys.argv[1]}")
PY
cd "$photos"
show() { echo; echo "\$ $*"; "$@" || true; }
show imgsearch index .
# text search on photos without any titles: the shipped photo head, or, on a folder unlike its
# training photos (these samples are), the classes and auto tags; `-f json` shows the weights used
show imgsearch query --text "a cat" -k 3 --format table
show imgsearch query --text "stars in the night sky" -k 3 --format table
show imgsearch query --text "a man with a camera" -k 1 --format json
# query by example: the twin photo comes first after the photo itself
show imgsearch query motorcycle_left.png -k 3 --format table
# image + text, fused
show imgsearch query coffee.png --text "2:brown" -k 3 --format table --timings
