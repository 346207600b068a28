"""The bertseq2seq (TF-Hub BERT encoder-decoder) family: its CLI road, torch-free targets, Hub module writer."""
