"""Evaluation metrics, one file per problem (gan, rbm, vae); they read models and data, never train."""
