"""bark-kedro evaluation (no Kedro here): end-to-end audio metrics and the report.

- ``audio_metrics``: mel-cepstral distortion after DTW, duration ratio, codec-token accuracy
  (:func:`~bark_kedro.evaluation.audio_metrics.compare_utterance`) and their summary.
- ``dtw``: dynamic time warping with the optimal path (numpy).
- ``plots``: side-by-side log-mel spectrograms of reference and synthesized audio.
- ``report``: the report folder (JSON, HTML with audio players and plots, WAVs, PNGs) and the
  flat metric names logged to MLflow.
"""
