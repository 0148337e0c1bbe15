"""Data: the public releases' naming (`releases`), the TFDS builder base (`release_builder`), how
a file becomes planes (`preparation`), finding and building datasets (`datasets`), the embedded
synthetic set (`synthetic`), split protocols (`splits`) and the grain input pipeline
(`input_pipeline`)."""
