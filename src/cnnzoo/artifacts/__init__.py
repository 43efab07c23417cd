"""Files on disk: atomic writes, the checksummed safetensors container, checkpoint sidecars and run-file names, reading other projects' state dicts safely. Imports nothing of cnnzoo but `errors`."""
