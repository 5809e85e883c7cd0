#!/usr/bin/env bash
# Shell pipelines with imgsearch. Each stage reads and writes files or lines, so they compose.
# Copy what you need; the paths below are examples.
set -euo pipefail

# Index a catalog with its titles (CSV columns as in examples/catalog.csv).
imgsearch index ./catalog --meta ./catalog/catalog.csv --text-columns title,colour

# Top 3 matches for a text, as a long listing (-0: NUL-ended paths, safe for any file name).
imgsearch query --text "black leather watch" -k 3 -0 | xargs -0 ls -l

# Copy the 20 images most like a photo into a folder.
mkdir -p picks
imgsearch query photo.jpg -k 20 -0 | xargs -0 cp -t picks/

# More like these two results, less like that one (ids or paths as --format json prints them).
imgsearch query --like ./catalog/a.jpg --like ./catalog/b.jpg --unlike ./catalog/c.jpg -k 10

# Duplicates: every copy but the largest file of each group, to review.
imgsearch dups ./catalog --format json | jq -r '.paths[1:][]'

# Delete those copies, safe for any file name; a file changed since `index` is never listed.
# (Commented out: this script is meant to be read and copied from, not to delete your files.)
# imgsearch dups ./catalog --copies -0 | xargs -0 -r rm --

# A contact sheet of the results, to look at rather than read.
imgsearch query --text "red handbag" -k 15 --sheet red-handbags.png --format paths > /dev/null

# Embed only last week's photos, found by find, into their own store.
find ~/Pictures -name '*.jpg' -mtime -7 | imgsearch embed - --out recent-vectors

# A photo straight from another program (stdin bytes), refined by words, as JSON lines.
curl -s https://example.com/shoe.jpg | imgsearch query - --text "white" --format json | jq -r '.path'

# Scores per space for tuning weights (jq over JSON lines).
imgsearch query photo.jpg --text "red" --format json | jq -c '{rank, score, z, path}'

# Many queries at once, models loaded once: JSON lines in, JSON lines out.
imgsearch query --batch examples/queries.jsonl | jq -c '.results[0].path'

# Tab-separated output for spreadsheets and awk.
imgsearch query --text "red handbag" --format tsv | awk -F'\t' '$2 > 3 {print $3}'
