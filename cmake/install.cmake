# Installation and the Debian package. The layout follows the FHS so that one tree serves
# `cmake --install` under any prefix and the .deb: runtime/ext.c finds libsgrun_net.so at
# ../lib/sgrun/ from the executable, wherever the prefix puts both.
include(GNUInstallDirs)

install(TARGETS sgrun RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS sgrun_net LIBRARY DESTINATION lib/sgrun
        PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
file(GLOB SGRUN_PLAYBOOKS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/scripts/*.lua)
install(PROGRAMS ${SGRUN_PLAYBOOKS} DESTINATION ${CMAKE_INSTALL_DATADIR}/sgrun/scripts)
install(FILES deploy/bash-completion/sgrun
        DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions)
install(FILES deploy/systemd/sgrun-drift.service deploy/systemd/sgrun-drift.timer
        DESTINATION lib/systemd/system)

# Debian policy wants man pages and changelogs compressed with gzip -9n (no timestamp).
find_program(GZIP_PROGRAM gzip REQUIRED)
set(SGRUN_GZ_DIR ${CMAKE_BINARY_DIR}/gz)
foreach(pair "docs/sgrun.1|sgrun.1.gz" "deploy/debian/changelog|changelog.gz")
  string(REPLACE "|" ";" pair "${pair}")
  list(GET pair 0 src)
  list(GET pair 1 out)
  add_custom_command(OUTPUT ${SGRUN_GZ_DIR}/${out}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${SGRUN_GZ_DIR}
    COMMAND sh -c "${GZIP_PROGRAM} -9n -c '${CMAKE_SOURCE_DIR}/${src}' > '${SGRUN_GZ_DIR}/${out}'"
    DEPENDS ${CMAKE_SOURCE_DIR}/${src} VERBATIM)
  list(APPEND SGRUN_GZ_FILES ${SGRUN_GZ_DIR}/${out})
endforeach()
add_custom_target(sgrun_compressed_docs ALL DEPENDS ${SGRUN_GZ_FILES})
install(FILES ${SGRUN_GZ_DIR}/sgrun.1.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
install(FILES ${SGRUN_GZ_DIR}/changelog.gz deploy/debian/copyright
        DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(FILES deploy/debian/lintian-overrides DESTINATION ${CMAKE_INSTALL_DATADIR}/lintian/overrides
        RENAME sgrun)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME sgrun)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "sgrun maintainers <maintainers@sgrun.invalid>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "Lua playbooks for the firewall rules of five clouds")
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION "sgrun runs Lua 5.4 playbooks that snapshot, diff, plan and roll out security
group rules across Exoscale, Gcore, Genesis Cloud, Barrack and HostUp, with an
emulator of all five APIs for offline use and tests.")
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "https://sgrun.invalid/")
set(CPACK_STRIP_FILES ON)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
include(CPack)
