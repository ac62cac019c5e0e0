"""Quality: DNSMOS (ITU-T P.835 SIG / BAK / OVRL and P.808 MOS) through ``speechmos``, whose
wheel ships Microsoft's DNSMOS ONNX models (run by onnxruntime)."""

from __future__ import annotations

import numpy as np

from bark_kedro.evaluation.intelligibility import ASR_SAMPLE_RATE, to_16k

MOS_KINDS = ("dnsmos", "none")


class DnsMos:
    """DNSMOS scores of a clip (1 = bad .. 5 = excellent). Clips shorter than the model's
    9 s window are repeated to fill it (speechmos's own convention)."""

    name = "DNSMOS P.835 (speechmos, bundled ONNX models)"

    def __init__(self):
        from speechmos import dnsmos

        self._dnsmos = dnsmos

    def score(self, audio: np.ndarray, sample_rate: int) -> dict[str, float]:
        """``dnsmos_sig``, ``dnsmos_bak``, ``dnsmos_ovrl`` and ``dnsmos_p808`` of ``audio``."""
        x = to_16k(audio, sample_rate).astype(np.float64)
        if not np.any(x):
            raise ValueError("DNSMOS of digital silence is undefined: the audio is all zeros")
        out = self._dnsmos.run(x, ASR_SAMPLE_RATE)
        return {"dnsmos_sig": float(out["sig_mos"]), "dnsmos_bak": float(out["bak_mos"]),
                "dnsmos_ovrl": float(out["ovrl_mos"]), "dnsmos_p808": float(out["p808_mos"])}
