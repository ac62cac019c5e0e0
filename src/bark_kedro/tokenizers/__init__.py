"""bark-kedro tokenizers (no Kedro here).

- ``text``: Bark's BERT vocabulary, or character / phoneme vocabularies built from data.
- ``features``, ``kmeans``, ``semantic``: ~50 Hz frame features (MFCC, HuBERT, wav2vec2)
  quantized by a JAX k-means into semantic ids; ``ssl_weights`` reads HuBERT / wav2vec2
  weights saved by torchaudio, fairseq or transformers.
- ``bark_semantic``: Bark's own semantic ids from a learned quantizer over HuBERT layer 9.
- ``codec``: EnCodec 24 kHz codes (8 x 1024 at 75 Hz) and decoding back to audio.
- ``frames``: the frame-count conventions that keep the two audio token streams aligned.
"""
