# Containers and Slurm (docs/containers.md):
#   containers_recipes  static checks of the Containerfile, the Apptainer definition, the CSCS
#                       EDF and the sbatch and shell scripts (what cannot be built here);
#   containers_image    containers/build-image without a daemon: skopeo and umoci validate the
#                       archive, cairn trains under chroot in its root filesystem, oci-to-sqsh;
#                       the Debian layer is cached in the build folder (first run: minutes);
#   containers_slurm    a single-node Slurm on localhost: srun --mpi=pmix with 1 and 4 ranks,
#                       then the time-limit signal, checkpoint, requeue and exact resume.
# The last two need root and Debian packages (debootstrap skopeo umoci jq squashfs-tools;
# slurm-wlm munge jq) and report "skipped" (exit 77) without them.
add_test(NAME containers_recipes
         COMMAND ${CAIRN_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/containers/lint_recipes.py
                 ${CMAKE_SOURCE_DIR})
set_tests_properties(containers_recipes PROPERTIES TIMEOUT 120)

add_test(NAME containers_image
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/containers/image.sh $<TARGET_FILE:cairn>
                 ${CMAKE_SOURCE_DIR} ${CMAKE_BINARY_DIR}/containers-cache)
add_test(NAME containers_slurm
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/containers/slurm.sh $<TARGET_FILE:cairn>
                 ${CMAKE_SOURCE_DIR})
set_tests_properties(containers_image PROPERTIES TIMEOUT 900 SKIP_RETURN_CODE 77 RUN_SERIAL TRUE)
set_tests_properties(containers_slurm PROPERTIES TIMEOUT 300 SKIP_RETURN_CODE 77 RUN_SERIAL TRUE
                     ENVIRONMENT "${CAIRN_TEST_ENV}")
