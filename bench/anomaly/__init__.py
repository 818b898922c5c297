"""Evaluation of the anomaly models on public benchmarks (NAB v1.1, SKAB), clean-room scorers.

`bench.anomaly.nab` scores NAB, `bench.anomaly.skab` computes SKAB's metrics, `bench.anomaly.data`
finds the data (never vendored), and ``python -m bench.anomaly`` prints the table.
"""
