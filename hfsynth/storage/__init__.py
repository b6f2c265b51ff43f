"""Where a run folder lives: a local folder under a lock (:mod:`~hfsynth.storage.folder_lock`), or object storage
mirrored to a local copy (:mod:`~hfsynth.storage.mirror`, talking to the store through
:mod:`~hfsynth.storage.object_store`; the call cache sent up as it grows by :mod:`~hfsynth.storage.cache_sync`)."""
