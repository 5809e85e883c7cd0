"""``embed --engine beam``: the embedding job as an Apache Beam pipeline writing store shards."""
