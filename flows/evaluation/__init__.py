"""evaluation: reports that score trained models against baselines (FITB / compatibility, neighbour
precision, same-garment structure retrieval)."""
