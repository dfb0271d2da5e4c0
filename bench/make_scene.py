# Build drender's benchmark scene: 24 Cycles frames whose cost rises and falls (glass comes and goes).
#
# Run: blender -b --factory-startup --python bench/make_scene.py -- OUTPUT.blend
#
# Two rows of glass and mirror spheres are shown a few at a time, following VISIBLE below, over a
# small floor under an open sky (sky pixels cost almost nothing), so the per-frame cost changes
# about 3x across the animation, in two waves, the second larger (like shots of different
# complexity). 240x135, 64 samples, no denoising (Debian's Blender has no OpenImageDenoise):
# 0.45 s to 1.4 s a frame with 2 threads, about 20 s for all 24 frames in one Blender on 2 cores.
import math
import os
import sys

import bpy

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '../blend'))
import scene_kit  # noqa: E402  (found through the path above)

FRAME_START = 1
FRAME_END = 24
# Glass/metal spheres visible in each frame 1..24: two waves, the second bigger.
VISIBLE = [0, 0, 1, 2, 3, 4, 4, 3, 2, 1, 0, 0, 1, 2, 4, 6, 8, 10, 10, 8, 6, 3, 1, 0]
SPHERES = max(VISIBLE)



def backdrop():
    """A diffuse floor under the spheres; most of the frame is sky, which costs almost nothing."""
    bpy.ops.mesh.primitive_plane_add(size=12.0, location=(0.0, 1.0, 0.0))
    floor = bpy.context.active_object
    floor.data.materials.append(
        scene_kit.principled("FloorMat", (0.7, 0.7, 0.65, 1.0), roughness=0.8))


def spheres():
    """SPHERES glass/metal spheres on two rows; sphere i renders in frames where VISIBLE > i."""
    for i in range(SPHERES):
        row, col = divmod(i, 5)
        x = -4.4 + 2.2 * col
        y = -1.0 + 2.4 * row
        bpy.ops.mesh.primitive_uv_sphere_add(radius=1.1, segments=48, ring_count=24,
                                             location=(x, y, 1.1 + 1.2 * row))
        sphere = bpy.context.active_object
        sphere.name = "Sphere%02d" % i
        bpy.ops.object.shade_smooth()
        if i % 2 == 0:
            mat = scene_kit.principled("Glass%d" % i, (0.95, 0.97, 1.0, 1.0), roughness=0.02,
                                       transmission=1.0, ior=1.5)
        else:
            mat = scene_kit.principled("Metal%d" % i, (0.9, 0.85, 0.8, 1.0), metallic=1.0,
                                       roughness=0.05)
        sphere.data.materials.append(mat)
        for frame in range(FRAME_START, FRAME_END + 1):
            sphere.hide_render = VISIBLE[frame - FRAME_START] <= i
            sphere.keyframe_insert("hide_render", frame=frame)
        for fcurve in sphere.animation_data.action.fcurves:
            for point in fcurve.keyframe_points:
                point.interpolation = "CONSTANT"


def camera_and_lights(scene):
    """A fixed camera looking at the rows, a sun and an area light (soft shadows cost a bit)."""
    cam = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    cam.data.lens = 28.0
    cam.location = (0.0, -8.0, 3.0)
    cam.rotation_euler = (math.radians(75.0), 0.0, 0.0)
    scene.collection.objects.link(cam)
    scene.camera = cam

    sun = bpy.data.objects.new("Sun", bpy.data.lights.new("Sun", "SUN"))
    sun.data.energy = 3.0
    sun.rotation_euler = (math.radians(40.0), math.radians(15.0), math.radians(30.0))
    scene.collection.objects.link(sun)
    area = bpy.data.objects.new("Area", bpy.data.lights.new("Area", "AREA"))
    area.data.energy = 400.0
    area.data.size = 3.0
    area.location = (3.0, -3.0, 5.0)
    scene.collection.objects.link(area)

    scene_kit.sky(scene, (0.4, 0.45, 0.55, 1.0), 0.7)


def render_settings(scene):
    """Cycles on the CPU, PNG output, no denoising."""
    scene_kit.cycles(scene, (240, 135), 64, (FRAME_START, FRAME_END),
                     dict(max_bounces=12, transmission_bounces=12, glossy_bounces=8,
                          diffuse_bounces=1, caustics_reflective=False,
                          caustics_refractive=False))
    scene.render.filepath = "//out/bench_####"


def build(out_path):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.name = "Bench"
    render_settings(scene)
    backdrop()
    spheres()
    camera_and_lights(scene)
    scene.frame_set(FRAME_START)
    bpy.ops.wm.save_as_mainfile(filepath=out_path, compress=True)


scene_kit.run(build, 'bench/make_scene.py')
