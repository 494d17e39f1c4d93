"""Soft targets: the on-disk cache a teacher writes once (`cache`) and sharing it as a Hub dataset (`shared`)."""
