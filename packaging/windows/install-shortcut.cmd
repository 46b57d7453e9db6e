@echo off
rem Creates desktop and Start menu shortcuts that start a VirtualBox VM through vblaunch.
rem Usage: install-shortcut.cmd "VM name"   (add --remove to delete them again)
rem The shortcuts start vblaunchw.exe (next to vblaunch.exe): no console window.
if "%~1"=="" (
  echo Usage: %~nx0 "VM name" [--desktop] [--start-menu] [--remove]
  exit /b 2
)
if not exist "%~dp0vblaunchw.exe" (
  echo vblaunchw.exe is missing next to vblaunch.exe; unpack the whole zip.
  pause
  exit /b 1
)
"%~dp0vblaunch.exe" shortcut %*
if errorlevel 1 pause
