@echo off
rem Creates desktop and Start menu shortcuts that start a VirtualBox VM through vblaunch.
rem Usage: install-shortcut.cmd "VM name"   (add --remove to delete them again)
if "%~1"=="" (
  echo Usage: %~nx0 "VM name" [--desktop] [--start-menu] [--remove]
  exit /b 2
)
"%~dp0vblaunch.exe" shortcut %*
if errorlevel 1 pause
