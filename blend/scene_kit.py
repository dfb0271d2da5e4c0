# Shared pieces of drender's scene generators (demo, benchmark and test scenes): a material, the
# sky, Cycles settings and the script entry point. Each generator runs as
# `blender -b --factory-startup --python SCRIPT -- OUTPUT.blend` and imports this file.
import sys
import traceback

import bpy


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


def sky(scene, color, strength=1.0):
    """A plain background colour."""
    world = bpy.data.worlds.new("World")
    world.use_nodes = True
    world.node_tree.nodes["Background"].inputs["Color"].default_value = color
    world.node_tree.nodes["Background"].inputs["Strength"].default_value = strength
    scene.world = world
    return world


def tiny_stage(scene):
    """The test scenes' 64x36, 4-sample set-up: Cycles over frames 1..6, a flat grey sky, a camera
    looking at the origin from the front and a sun."""
    cycles(scene, (64, 36), 4, (1, 6), dict(max_bounces=2))
    sky(scene, (0.2, 0.2, 0.25, 1.0)).color = (0.2, 0.2, 0.2)
    cam = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    scene.collection.objects.link(cam)
    cam.location = (0.0, -6.0, 2.0)
    cam.rotation_euler = (1.30, 0.0, 0.0)
    scene.camera = cam
    sun = bpy.data.objects.new("Sun", bpy.data.lights.new("Sun", "SUN"))
    sun.data.energy = 3.0
    sun.rotation_euler = (0.6, 0.2, 0.0)
    scene.collection.objects.link(sun)


def cycles(scene, size, samples, frames, bounces):
    """Cycles on the CPU without denoising (Debian's Blender has no OpenImageDenoise), PNG RGB.
    SIZE (x, y) pixels, FRAMES (start, end); BOUNCES a dict of Cycles bounce settings and
    caustics flags (e.g. max_bounces=8)."""
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = samples
    scene.cycles.use_adaptive_sampling = False
    scene.cycles.use_denoising = False
    scene.cycles.use_preview_denoising = False
    for key, value in bounces.items():
        setattr(scene.cycles, key, value)
    scene.render.resolution_x, scene.render.resolution_y = size
    scene.render.resolution_percentage = 100
    scene.render.use_persistent_data = False
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGB"
    scene.frame_start, scene.frame_end = frames
    scene.frame_current = frames[0]


def run(build, script):
    """Entry point: call BUILD(output path) with the one argument after '--'; exit 2 on bad
    usage, 1 (with the traceback) if building fails."""
    argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
    if len(argv) != 1:
        sys.stderr.write("usage: blender -b --factory-startup --python %s -- OUTPUT.blend\n"
                         % script)
        sys.exit(2)
    try:
        build(argv[0])
    except Exception:
        traceback.print_exc()
        sys.exit(1)
