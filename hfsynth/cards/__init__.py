"""Cards for the dataset, the students and the Space: typed card data (:mod:`~hfsynth.cards.data`, on
``huggingface_hub``'s ``CardData`` classes) apart from rendering (:mod:`~hfsynth.cards.render`), with the packaged
Jinja templates (:mod:`~hfsynth.templates`)."""
