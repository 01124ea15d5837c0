"""torchtune components that train a speech-aware Llama 3 straight from dataengine's WebDataset shards.

Modules: ``tokenizer`` (sound-token ids), ``shards`` (where shards live, reading them), ``dataset``
(the streaming, packing, resumable IterableDataset), ``loader`` (DataLoader + its checkpointable
position), ``vocab`` (embedding resize), ``tiny`` (a tiny tokenizer + model for CPU runs) and the
recipe ``stream_finetune.py`` (run it with ``tune run dataengine/training/stream_finetune.py --config …``).
"""
