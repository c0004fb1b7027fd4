from manim import *


class GeneratedAnimation(Scene):
    def construct(self):
        title = Text("Hello, watcher", font_size=48)
        self.play(Write(title), run_time=1)
        self.play(title.animate.scale(0.6).to_edge(UP), run_time=0.5)
