from manim import *


class EulerIdentity(Scene):
    def construct(self):
        formula = MathTex(r"e^{i\pi} + 1 = 0", font_size=96)
        self.play(Write(formula), run_time=1.5)
        self.play(Indicate(formula), run_time=1)
