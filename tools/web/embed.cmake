# Writes OUT, a C++ source defining blackbox::tools::ServePage() as the text
# of IN. Run by tools/CMakeLists.txt at build time.
file(READ ${IN} page)
string(FIND "${page}" ")page\"" clash)
if(NOT clash EQUAL -1)
  message(FATAL_ERROR "${IN} contains the raw-string terminator )page\"")
endif()
file(WRITE ${OUT} "// Generated from tools/web/index.html by tools/web/embed.cmake.\n"
  "#include \"serve_page.h\"\n"
  "namespace blackbox::tools {\n"
  "std::string_view ServePage() {\n"
  "  static constexpr char kPage[] = R\"page(${page})page\";\n"
  "  return {kPage, sizeof kPage - 1};\n"
  "}\n"
  "}  // namespace blackbox::tools\n")
