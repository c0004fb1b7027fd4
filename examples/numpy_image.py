import numpy as np
from manim import *


class GeneratedAnimation(Scene):
    def construct(self):
        gradient = np.uint8([[(i * 16 + j * 8) % 256 for i in range(16)] for j in range(16)])
        image = ImageMobject(gradient).scale(20)
        self.play(FadeIn(image), run_time=1)
