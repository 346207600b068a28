"""The Mesh TensorFlow T5 family: its CLI road, its torch-free targets, its golden check reports, its fixture maker."""
