"""bark-kedro evaluation (no Kedro here): end-to-end audio metrics and the report.

- ``audio_metrics``: mel-cepstral distortion after DTW, duration ratio, codec-token accuracy
  (:func:`~bark_kedro.evaluation.audio_metrics.compare_utterance`) and their summary.
- ``hearing``: the synthesized audio, codec round trip and original recording of each held-out
  utterance heard by ``intelligibility`` (ASR + WER/CER), ``speaker`` (embedding cosine) and
  ``quality`` (DNSMOS).
- ``dtw``: dynamic time warping with the optimal path (numpy).
- ``plots``: side-by-side log-mel spectrograms of original, round-trip and synthesized audio.
- ``report``: the report folder (JSON, HTML with embedded players and plots, WAVs, PNGs) and the
  flat metric names logged to MLflow.
"""
