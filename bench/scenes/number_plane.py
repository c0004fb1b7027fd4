from manim import *


class VectorOnPlane(Scene):
    def construct(self):
        plane = NumberPlane(x_range=[-5, 5, 1], y_range=[-3, 3, 1])
        vector = Arrow(plane.c2p(0, 0), plane.c2p(3, 2), buff=0, color=YELLOW)
        self.play(Create(plane), run_time=1)
        self.play(GrowArrow(vector), run_time=0.7)
        self.play(Rotate(vector, angle=PI / 2, about_point=plane.c2p(0, 0)), run_time=0.8)
