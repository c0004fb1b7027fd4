from manim import *


class SmallNetwork(Scene):
    def construct(self):
        vertices = [1, 2, 3, 4, 5, 6]
        edges = [(1, 2), (1, 3), (2, 4), (3, 4), (4, 5), (5, 6), (6, 1)]
        graph = Graph(vertices, edges, layout="circular", layout_scale=2.5)
        self.play(Create(graph), run_time=1.5)
        self.play(graph.vertices[4].animate.set_color(RED), run_time=0.5)
