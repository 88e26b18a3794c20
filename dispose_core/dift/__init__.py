"""DIFT featurizer (SD 1.5 up-block features) and reference keypoint embeddings."""
