; Inno Setup script: Companion for Windows (per-user install, no admin rights needed).
; Built by .github/workflows/package.yml after PyInstaller:
;   iscc /DAppVersion=0.1.0 /DSourceDir=..\dist\companion /DOutputDir=..\dist packaging\windows\companion.iss
; The window is WebView2 (Edge's runtime). Windows 11 ships it; on Windows 10 the setup checks
; for it and, if missing, offers Microsoft's download page (the app itself never downloads).

#ifndef AppVersion
  #define AppVersion "0.1.0"
#endif
#ifndef SourceDir
  #define SourceDir "..\dist\companion"
#endif
#ifndef OutputDir
  #define OutputDir "..\dist"
#endif

[Setup]
AppId={{5B7C2D4E-6A1F-4C3B-9E8D-0C1A2B3C4D5E}
AppName=Companion
AppVersion={#AppVersion}
AppPublisher=Companion developers
DefaultDirName={localappdata}\Programs\Companion
DefaultGroupName=Companion
PrivilegesRequired=lowest
OutputDir={#OutputDir}
OutputBaseFilename=Companion-{#AppVersion}-setup
SetupIconFile=..\build\icons\companion.ico
UninstallDisplayIcon={app}\companion.exe
Compression=lzma2/max
SolidCompression=yes
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
WizardStyle=modern

[Files]
Source: "{#SourceDir}\*"; DestDir: "{app}"; Flags: recursesubdirs createallsubdirs ignoreversion

[Icons]
Name: "{group}\Companion"; Filename: "{app}\companion.exe"
Name: "{userdesktop}\Companion"; Filename: "{app}\companion.exe"; Tasks: desktopicon

[Tasks]
Name: "desktopicon"; Description: "Create a desktop shortcut"; Flags: unchecked

[Run]
Filename: "{app}\companion.exe"; Description: "Start Companion"; Flags: nowait postinstall skipifsilent

[UninstallDelete]
; the files the app wrote beside itself (none by design); user data in %LOCALAPPDATA%\companion stays
Type: dirifempty; Name: "{app}"

[Code]
const
  WebView2Client = '{F3017226-FE2A-4295-8BDF-00C3A9A7E4C5}';

function WebView2Installed(): Boolean;
var
  Version: String;
begin
  { Microsoft's documented check: the runtime's "pv" value, per machine or per user }
  Result :=
    (RegQueryStringValue(HKLM, 'SOFTWARE\WOW6432Node\Microsoft\EdgeUpdate\Clients\' + WebView2Client, 'pv', Version) and (Version <> '') and (Version <> '0.0.0.0')) or
    (RegQueryStringValue(HKLM, 'SOFTWARE\Microsoft\EdgeUpdate\Clients\' + WebView2Client, 'pv', Version) and (Version <> '') and (Version <> '0.0.0.0')) or
    (RegQueryStringValue(HKCU, 'Software\Microsoft\EdgeUpdate\Clients\' + WebView2Client, 'pv', Version) and (Version <> '') and (Version <> '0.0.0.0'));
end;

function InitializeSetup(): Boolean;
var
  ErrorCode: Integer;
begin
  Result := True;
  if not WebView2Installed() then
  begin
    if MsgBox('Companion needs the Microsoft Edge WebView2 Runtime, which is not installed.' #13#10 +
              'Open Microsoft''s download page now? (Install it, then run this setup again.)',
              mbConfirmation, MB_YESNO) = IDYES then
      ShellExec('open', 'https://developer.microsoft.com/microsoft-edge/webview2/', '', '', SW_SHOW, ewNoWait, ErrorCode);
    Result := False;
  end;
end;
