"""digitbot core: pure ML (data, preprocessing, model, training, evaluation, serving).

Never imports `bot`.
"""
