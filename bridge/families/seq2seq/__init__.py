"""TF-Hub BERT seq2seq modules (``bertseq2seq``)."""
