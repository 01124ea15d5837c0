"""``dataengine serve``: a local, read-only web app over a finished build (overview, browse, samples,
threshold explorer). Queries run in DuckDB over the manifest; audio is read straight out of the shards."""
