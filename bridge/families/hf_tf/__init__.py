"""transformers' TF layout (``tf_model.h5``): BERT (``hf-tf``, :mod:`.pack`) and other families generically
(``hf-tf-generic``, :mod:`.generic_pack` over the per-family data in :mod:`.data`)."""
