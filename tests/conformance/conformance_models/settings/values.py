class Threshold:
    def __init__(self, value: float) -> None:
        self.value = value
