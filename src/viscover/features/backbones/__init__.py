"""One file per backbone family; each registers its specs with `viscover.features.registry`."""
