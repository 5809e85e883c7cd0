"""The embedding job: every image and its text become vectors, auto tags and OCR text, in
chunks that survive interruption; ``embed.beam`` runs the same job on Apache Beam."""
