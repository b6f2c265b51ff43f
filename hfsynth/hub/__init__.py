"""hfsynth's Hub client side: the ids a recipe's artifacts go by (:mod:`~hfsynth.repo_ids`) and publishing them
(:mod:`~hfsynth.hub.publish`). The loopback server that stands in for the Hub is :mod:`hfsynth.hub_server`."""
