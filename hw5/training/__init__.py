"""One explicit training loop per model family, each returning (model, history)."""
