"""Export: wrappers over the reference model, CoreML conversion, package files."""
