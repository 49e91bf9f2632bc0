"""One file per detector family; each registers its specs with `viscover.detect.registry`."""
