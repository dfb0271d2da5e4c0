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
import sys
import traceback

import bpy

FRAME_START = 1
FRAME_END = 24
# Glass/metal spheres visible in each frame 1..24: two waves, the second bigger.
VISIBLE = [0, 0, 1, 2, 3, 4, 4, 3, 2, 1, 0, 0, 1, 2, 4, 6, 8, 10, 10, 8, 6, 3, 1, 0]
SPHERES = max(VISIBLE)


def principled(name, color, metallic=0.0, roughness=0.5, transmission=0.0, ior=1.45):
    """A Principled BSDF material."""
    mat = bpy.data.materials.new(name)
    mat.use_nodes = True
    bsdf = mat.node_tree.nodes["Principled BSDF"]
    bsdf.inputs["Base Color"].default_value = color
    bsdf.inputs["Metallic"].default_value = metallic
    bsdf.inputs["Roughness"].default_value = roughness
    bsdf.inputs["Transmission"].default_value = transmission
    bsdf.inputs["IOR"].default_value = ior
    return mat


def backdrop():
    """A diffuse floor under the spheres; most of the frame is sky, which costs almost nothing."""
    bpy.ops.mesh.primitive_plane_add(size=12.0, location=(0.0, 1.0, 0.0))
    floor = bpy.context.active_object
    floor.data.materials.append(principled("FloorMat", (0.7, 0.7, 0.65, 1.0), roughness=0.8))


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
            mat = principled("Glass%d" % i, (0.95, 0.97, 1.0, 1.0), roughness=0.02,
                             transmission=1.0, ior=1.5)
        else:
            mat = principled("Metal%d" % i, (0.9, 0.85, 0.8, 1.0), metallic=1.0, roughness=0.05)
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

    world = bpy.data.worlds.new("World")
    world.use_nodes = True
    world.node_tree.nodes["Background"].inputs["Color"].default_value = (0.4, 0.45, 0.55, 1.0)
    world.node_tree.nodes["Background"].inputs["Strength"].default_value = 0.7
    scene.world = world


def render_settings(scene):
    """Cycles on the CPU, PNG output, no denoising."""
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = 64
    scene.cycles.use_adaptive_sampling = False
    scene.cycles.use_denoising = False
    scene.cycles.use_preview_denoising = False
    scene.cycles.max_bounces = 12
    scene.cycles.transmission_bounces = 12
    scene.cycles.glossy_bounces = 8
    scene.cycles.diffuse_bounces = 1
    scene.cycles.caustics_reflective = False
    scene.cycles.caustics_refractive = False
    scene.render.resolution_x = 240
    scene.render.resolution_y = 135
    scene.render.resolution_percentage = 100
    scene.render.use_persistent_data = False
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGB"
    scene.render.filepath = "//out/bench_####"
    scene.frame_start = FRAME_START
    scene.frame_end = FRAME_END
    scene.frame_current = FRAME_START


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


def main():
    argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
    if len(argv) != 1:
        sys.stderr.write("usage: blender -b --factory-startup --python make_scene.py"
                         " -- OUTPUT.blend\n")
        sys.exit(2)
    try:
        build(argv[0])
    except Exception:
        traceback.print_exc()
        sys.exit(1)


main()
