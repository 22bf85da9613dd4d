"""DeblurStudio's training subproject: data synthesis, datasets, losses, training, evaluation and
export of the checkpoints the application ships. The application never imports it."""
