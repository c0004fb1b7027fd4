from manim import *


class GradientImage(Scene):
    def construct(self):
        x = np.linspace(0, 255, 160, dtype=np.uint8)
        pixels = np.zeros((90, 160, 3), dtype=np.uint8)
        pixels[:, :, 0] = x
        pixels[:, :, 2] = x[::-1]
        image = ImageMobject(pixels).scale(3)
        self.play(FadeIn(image), run_time=1)
        self.play(image.animate.scale(0.5).to_corner(UL), run_time=1)
