# Man pages generated at build time from each program's --help with help2man
# (Debian package help2man), so they never drift from the help text. Skipped,
# with a message, when help2man is not installed; never committed.
find_program(BLACKBOX_HELP2MAN help2man)
if(NOT BLACKBOX_HELP2MAN)
  message(STATUS "help2man not found: the man pages are not built")
endif()

# blackbox_man_page(TARGET DESCRIPTION SEE_ALSO [SUBCOMMAND...]): <build>/man/TARGET.1
# from TARGET's --help (its examples kept line by line, each subcommand's
# --help in a COMMANDS section), installed to man1.
function(blackbox_man_page target description see_also)
  if(NOT BLACKBOX_HELP2MAN)
    return()
  endif()
  set(dir ${PROJECT_BINARY_DIR}/man)
  set(page ${dir}/${target}.1)
  set(include ${dir}/${target}.h2m)
  add_custom_command(
    OUTPUT ${page}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${dir}
    COMMAND sh ${PROJECT_SOURCE_DIR}/cmake/man-include.sh $<TARGET_FILE:${target}>
            "${see_also}" ${ARGN} > ${include}
    COMMAND ${BLACKBOX_HELP2MAN} --no-info --no-discard-stderr --include ${include}
            --name "${description}" --output ${page} $<TARGET_FILE:${target}>
    DEPENDS ${target} ${PROJECT_SOURCE_DIR}/cmake/man-include.sh
    COMMENT "Generating the man page ${target}(1)"
    VERBATIM)
  add_custom_target(${target}-man ALL DEPENDS ${page})
  install(FILES ${page} DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
endfunction()
