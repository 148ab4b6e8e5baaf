"""The collaborative half: models learnt from who played what.

- :mod:`.wmf`: weighted matrix factorization (Hu, Koren & Volinsky) with ``implicit``'s ALS;
  :mod:`.spark` fits the same model with Spark MLlib's ALS;
- :mod:`.neighbours`: the item-to-item neighbourhood model (co-occurrence similarities, top-K);
- :mod:`.selection`: their settings chosen on a validation split within a cost budget
  (``pmrs train-wmf``, ``pmrs train-neighbours``) and ``pmrs tune``;
- :mod:`.share`: the neighbours and metadata sources' served shares, chosen through the served
  blend (:mod:`pmrs.blend`);
- :mod:`.training`: the training stages that read a work directory and write runs;
- :mod:`.topk`: top-k over factors in memory, for the demo and evaluation.
"""
