from manim import *


class MatrixProduct(Scene):
    def construct(self):
        m = Matrix([[1, 2], [3, 4]])
        v = Matrix([[5], [6]]).next_to(m, RIGHT)
        result = MathTex("=").next_to(v, RIGHT)
        out = Matrix([[17], [39]]).next_to(result, RIGHT)
        group = VGroup(m, v, result, out).move_to(ORIGIN)
        self.play(FadeIn(group[:2]), run_time=0.8)
        self.play(Write(group[2:]), run_time=1)
