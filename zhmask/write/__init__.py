"""Arrow shard writer and manifest."""
