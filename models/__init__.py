"""Local anomaly detection (ONNX models and their streaming state).

Not built yet; tracked as issue 5. The hub runs on rules alone until it is.
"""
