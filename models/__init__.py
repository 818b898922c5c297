"""Local anomaly detection: ONNX models with their cards, the streaming state around them, the
`AnomalyService` the daemon runs, and `models.detect.score_table` for whole tables (see README.md).
"""
