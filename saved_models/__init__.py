"""saved_models: export keras-ser models as versioned SavedModels for TensorFlow Serving."""
